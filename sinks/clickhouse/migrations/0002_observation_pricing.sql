-- The model price a generation's inferred costs came from ('' when none matched or the client
-- sent every cost), so that a cost can be traced to its price and history re-priced.
ALTER TABLE {db}.observations ADD COLUMN {if_not_exists}usage_pricing_model_id String DEFAULT '';
