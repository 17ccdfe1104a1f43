-- Hotfix applied in development right after the migration: the application reads these
-- three columns on every activity instance and fails without them. Production needs it too.

-- phase: Hotfix: activity_instances columns
ALTER TABLE activity_instances ADD COLUMN completed BOOLEAN DEFAULT 0;
ALTER TABLE activity_instances ADD COLUMN notes STRING;
ALTER TABLE activity_instances ADD COLUMN data STRING;
