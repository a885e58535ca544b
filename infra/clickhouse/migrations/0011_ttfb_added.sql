-- What the gateway added to a stream's time to first token: from the request's arrival to the first
-- content chunk sent to the caller, minus the provider's own time to first token (ttfb_ms). NULL when
-- not streamed, or when no content was sent.
ALTER TABLE requests ADD COLUMN IF NOT EXISTS ttfb_added_ms Nullable(Float32) AFTER ttfb_ms;
