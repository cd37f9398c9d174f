"""Persistent usage records: one row per client request, written off the request path.

Modules: ``record`` (the row), ``store`` (SQLite and Postgres behind one small interface, selected by DSN),
``writer`` (the bounded queue and the one batching writer task), ``report`` (the llm-mux-shaped usage summary).
"""
