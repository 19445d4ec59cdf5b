-- The name of the pricing tier a generation's usage fell in ('' when no model matched or it
-- had no usage), as Langfuse records it (usage_pricing_tier_name): which of a model's prices,
-- the default or a conditional one such as long context, its inferred costs came from.
ALTER TABLE {db}.observations ADD COLUMN {if_not_exists}usage_pricing_tier_name String DEFAULT '';
ALTER TABLE {db}.observation_journal ADD COLUMN {if_not_exists}usage_pricing_tier_name String DEFAULT '';
