-- Prompt tokens the provider served from its prompt cache (priced at the cached-input price).
ALTER TABLE requests ADD COLUMN IF NOT EXISTS cached_tokens UInt32 DEFAULT 0 AFTER completion_tokens;
