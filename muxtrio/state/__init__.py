"""Shared state for scale-out: the store (:mod:`muxtrio.state.store`) and the credential pools' view kept in it
(:mod:`muxtrio.state.pools`)."""
