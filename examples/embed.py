"""Embed the muxtrio engine in a trio program: a config built in code (no file), one Engine, and two models
streamed concurrently from one nursery. Runs offline (both models are served by the built-in echo provider).

    python examples/embed.py
"""

from __future__ import annotations

import trio

import muxtrio
from muxtrio import ir


def build_config() -> muxtrio.Config:
    echo = muxtrio.ProviderConfig(
        type=muxtrio.ProviderType.ECHO,
        name="local-echo",
        models=(muxtrio.ModelConfig(name="muxtrio-echo"), muxtrio.ModelConfig(name="echo-2", alias="second")),
    )
    return muxtrio.Config(providers=(echo,), echo_model=False)


async def stream_one(engine: muxtrio.Engine, model: str, prompt: str, out: dict[str, str]) -> None:
    request = ir.Request(model=model, messages=(ir.Message(ir.Role.USER, (ir.Text(prompt),)),), stream=True)
    pieces: list[str] = []
    async with engine.stream(request) as events:
        async for event in events:
            if isinstance(event, ir.TextDelta):
                pieces.append(event.text)
                print(f"[{model}] {event.text!r}")
    out[model] = "".join(pieces)


async def main() -> dict[str, str]:
    answers: dict[str, str] = {}
    async with muxtrio.Engine(build_config()) as engine, trio.open_nursery() as nursery:
        nursery.start_soon(stream_one, engine, "muxtrio-echo", "the first stream says hello", answers)
        nursery.start_soon(stream_one, engine, "second", "and the second one answers at the same time", answers)
    return answers


if __name__ == "__main__":
    for model, text in trio.run(main).items():
        print(f"{model}: {text}")
