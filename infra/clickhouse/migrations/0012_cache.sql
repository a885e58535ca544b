-- The response cache (stages/cache.py): hit | miss | refresh | bypass ('' when the cache is off), and for
-- a hit what the provider call it saved cost (priced like any call when the answer was made).
ALTER TABLE requests ADD COLUMN IF NOT EXISTS cache LowCardinality(String) DEFAULT '' AFTER attempts;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS cache_saved_usd Nullable(Decimal(18, 9)) AFTER cache;
