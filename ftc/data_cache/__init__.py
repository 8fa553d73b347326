"""The cache of prepared data: its key (pure, recorded by the lock) and its entries."""
