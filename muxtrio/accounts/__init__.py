"""Subscription accounts (docs/accounts.md): token files in ``auth-dir`` (:mod:`.files`), the OAuth endpoints and
calls of each provider (:mod:`.oauth`), the live set of accounts with refresh and directory watching (:mod:`.store`),
and the login flows behind ``muxtrio login`` (:mod:`.login`).

Invariants: tokens never appear in logs, errors, labels or statistics (labels are ``<type>:<email or account id>``);
token files are written atomically (temporary file + rename) with mode 0600 in a 0700 directory.
"""
