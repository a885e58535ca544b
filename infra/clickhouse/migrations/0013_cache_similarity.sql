-- The semantic cache (stages/semantic_cache.py): a hit's cosine similarity between the question asked and
-- the one whose answer was served (NULL for an exact hit and for anything else).
ALTER TABLE requests ADD COLUMN IF NOT EXISTS cache_similarity Nullable(Float32) AFTER cache_saved_usd;
