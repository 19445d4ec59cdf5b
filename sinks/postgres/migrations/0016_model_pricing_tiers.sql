-- Conditional pricing tiers (Langfuse's pricingTiers beside the default tier): a provider's
-- long-context or priority prices. A list of {name, priority, conditions, prices}, by priority;
-- `prices` stays the default tier's, named `default_tier`, so a definition without tiers (all
-- written before) prices as it did.
ALTER TABLE models ADD COLUMN IF NOT EXISTS pricing_tiers jsonb NOT NULL DEFAULT '[]';
ALTER TABLE models ADD COLUMN IF NOT EXISTS default_tier text NOT NULL DEFAULT 'Standard';
