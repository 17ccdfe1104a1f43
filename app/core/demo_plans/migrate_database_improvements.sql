-- Fractal goals: database improvements.
-- Denormalise root_id (the goal tree a row belongs to) onto the hot tables, index the
-- lookups the pages make, and add soft deletes with an audit trail.
--
-- Safe to run again: an ADD COLUMN of a column that already exists is skipped by the
-- runner, every backfill only touches rows WHERE ... IS NULL, and every CREATE says
-- IF NOT EXISTS.

-- phase: Add root_id columns
-- A page that shows one goal tree can then filter on root_id instead of walking
-- parent_id chains for every session, activity and metric.
ALTER TABLE goals ADD COLUMN root_id INTEGER REFERENCES goals(id);
ALTER TABLE practice_sessions ADD COLUMN root_id INTEGER REFERENCES goals(id);
ALTER TABLE activity_instances ADD COLUMN root_id INTEGER REFERENCES goals(id);
ALTER TABLE metric_values ADD COLUMN root_id INTEGER REFERENCES goals(id);

-- phase: Backfill root_id
-- Goals: walk each tree down from its root (the goal whose parent_id IS NULL).
WITH RECURSIVE tree(id, root) AS (
    SELECT id, id FROM goals WHERE parent_id IS NULL
    UNION ALL
    SELECT child.id, tree.root FROM goals AS child JOIN tree ON child.parent_id = tree.id
)
UPDATE goals
SET root_id = (SELECT tree.root FROM tree WHERE tree.id = goals.id)
WHERE root_id IS NULL;
-- Sessions belong to the tree of the goal they practise.
UPDATE practice_sessions
SET root_id = (SELECT goals.root_id FROM goals WHERE goals.id = practice_sessions.goal_id)
WHERE root_id IS NULL;
-- Activities follow their session; the definition is the fallback so that an activity
-- whose session row is gone still lands in the right tree.
UPDATE activity_instances
SET root_id = COALESCE(
    (SELECT ps.root_id FROM practice_sessions AS ps
     WHERE ps.id = activity_instances.practice_session_id),
    (SELECT ad.root_id FROM activity_definitions AS ad
     WHERE ad.id = activity_instances.activity_definition_id))
WHERE root_id IS NULL;
-- Metric values follow their activity, with the metric definition as the fallback.
UPDATE metric_values
SET root_id = COALESCE(
    (SELECT ai.root_id FROM activity_instances AS ai
     WHERE ai.id = metric_values.activity_instance_id),
    (SELECT md.root_id FROM metric_definitions AS md
     WHERE md.id = metric_values.metric_definition_id))
WHERE root_id IS NULL;

-- phase: Indexes for root_id and hot lookups
CREATE INDEX IF NOT EXISTS idx_goals_root_id ON goals(root_id);
CREATE INDEX IF NOT EXISTS idx_goals_parent_id ON goals(parent_id);
CREATE INDEX IF NOT EXISTS idx_practice_sessions_root_id ON practice_sessions(root_id);
CREATE INDEX IF NOT EXISTS idx_practice_sessions_goal_id ON practice_sessions(goal_id);
-- The activity picker lists definitions group by group.
CREATE INDEX IF NOT EXISTS idx_activity_definitions_group_id ON activity_definitions(group_id);
CREATE INDEX IF NOT EXISTS idx_activity_definitions_root_id ON activity_definitions(root_id);
CREATE INDEX IF NOT EXISTS idx_activity_instances_root_id ON activity_instances(root_id);
CREATE INDEX IF NOT EXISTS idx_activity_instances_session_id ON activity_instances(practice_session_id);
CREATE INDEX IF NOT EXISTS idx_metric_values_root_id ON metric_values(root_id);
CREATE INDEX IF NOT EXISTS idx_metric_values_instance_id ON metric_values(activity_instance_id);

-- phase: Soft deletes and audit trail
-- Deleting a session used to cascade away its activities and metrics for good; from now
-- on the application sets deleted_at instead and records what it did in audit_log.
ALTER TABLE goals ADD COLUMN deleted_at DATETIME;
ALTER TABLE practice_sessions ADD COLUMN deleted_at DATETIME;
ALTER TABLE activity_definitions ADD COLUMN deleted_at DATETIME;
ALTER TABLE activity_instances ADD COLUMN deleted_at DATETIME;
ALTER TABLE goals ADD COLUMN updated_at DATETIME;
ALTER TABLE practice_sessions ADD COLUMN updated_at DATETIME;
ALTER TABLE activity_instances ADD COLUMN updated_at DATETIME;
-- ADD COLUMN cannot default to CURRENT_TIMESTAMP, so existing rows start at created_at.
UPDATE goals SET updated_at = created_at WHERE updated_at IS NULL;
UPDATE practice_sessions SET updated_at = created_at WHERE updated_at IS NULL;
UPDATE activity_instances SET updated_at = created_at WHERE updated_at IS NULL;
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    table_name TEXT NOT NULL,
    row_id INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('insert', 'update', 'soft_delete', 'restore')),
    root_id INTEGER REFERENCES goals(id) ON DELETE SET NULL,
    changed_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    details TEXT
);
CREATE INDEX IF NOT EXISTS idx_audit_log_row ON audit_log(table_name, row_id);
-- Tree pages only ever show live goals, so the index skips soft-deleted ones.
CREATE INDEX IF NOT EXISTS idx_goals_live_root_id ON goals(root_id) WHERE deleted_at IS NULL;
