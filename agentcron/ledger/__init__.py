"""The SQL run ledger: the durable record and the authority on windows."""
