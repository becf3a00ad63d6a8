-- The projects module: projects, their tasks, and comments on tasks.
--
-- Every row carries the team_id of the team it belongs to, and every query
-- the module runs filters on the caller's membership in that team through
-- the core's plexus.team_members (access control lives in the query).
--
-- Cascades, all written here and nowhere else:
--   * deleting a team (plexus.teams) deletes its projects, and with them
--     their tasks and those tasks' comments;
--   * deleting a project deletes its tasks; deleting a task its comments
--     (the API archives projects and deletes tasks; the row cascades are
--     for the team's deletion and for operators);
--   * deleting a user (plexus.users) unassigns their tasks (SET NULL);
--     created_by and author_id are kept as plain data, without a foreign
--     key, so history survives the user, as in plexus.audit_log;
--   * a user leaving a team unassigns their tasks of that team without a
--     trigger on the core's table: an assignment counts only while the
--     membership it was made under exists (team_members.created_at <=
--     tasks.assigned_at, checked by every read), so leaving shows the task
--     unassigned at once and rejoining does not bring old assignments back.
--
-- team_id is repeated on tasks and comments so that every row answers
-- "whose is this" by itself; composite foreign keys keep it equal to the
-- parent's. version counts writes: it is the ETag, and every UPDATE checks
-- it in its WHERE clause, so a stale write changes nothing (412).

CREATE SCHEMA IF NOT EXISTS projects;

-- name search (?q=) is ILIKE '%...%': a trigram index answers it. pg_trgm is
-- a trusted contrib extension (PostgreSQL 13+), so the database owner may
-- create it; Debian's postgresql-15 ships it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE projects.projects (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id     uuid        NOT NULL REFERENCES plexus.teams (id) ON DELETE CASCADE,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    status      text        NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'archived')),
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer     NOT NULL DEFAULT 1,
    UNIQUE (id, team_id)    -- target of the tasks' composite foreign key
);
-- GET /api/v1/projects: by team, optionally by status, in created_at order
CREATE INDEX projects_team_idx ON projects.projects (team_id, created_at, id);
CREATE INDEX projects_team_status_idx ON projects.projects (team_id, status, created_at, id);
CREATE INDEX projects_name_trgm_idx ON projects.projects USING gin (name gin_trgm_ops);

-- Task statuses: todo -> in_progress -> done, and blocked beside them; any
-- move between them is allowed.
CREATE TABLE projects.tasks (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id     uuid        NOT NULL,
    project_id  uuid        NOT NULL,
    title       text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    status      text        NOT NULL DEFAULT 'todo'
                            CHECK (status IN ('todo', 'in_progress', 'blocked', 'done')),
    assignee_id uuid        REFERENCES plexus.users (id) ON DELETE SET NULL,
    assigned_at timestamptz,            -- when assignee_id was last set
    due_date    date,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer     NOT NULL DEFAULT 1,
    UNIQUE (id, team_id),
    FOREIGN KEY (project_id, team_id)
        REFERENCES projects.projects (id, team_id) ON DELETE CASCADE
);
-- GET /api/v1/projects/{id}/tasks: one index per sort order, and one per
-- equality filter in the default order; due_before/due_after ride on the
-- due-date index. Tasks without a due date sort as if due at 'infinity'.
CREATE INDEX tasks_created_idx ON projects.tasks (project_id, created_at, id);
CREATE INDEX tasks_updated_idx ON projects.tasks (project_id, updated_at, id);
CREATE INDEX tasks_due_idx ON projects.tasks
    (project_id, (COALESCE(due_date, 'infinity'::date)), id);
CREATE INDEX tasks_status_idx ON projects.tasks (project_id, status, created_at, id);
CREATE INDEX tasks_assignee_idx ON projects.tasks (project_id, assignee_id, created_at, id);
-- for ON DELETE SET NULL when a user is deleted
CREATE INDEX tasks_assignee_fk_idx ON projects.tasks (assignee_id)
    WHERE assignee_id IS NOT NULL;

CREATE TABLE projects.comments (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id     uuid        NOT NULL,
    task_id     uuid        NOT NULL,
    author_id   uuid        NOT NULL,
    body        text        NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer     NOT NULL DEFAULT 1,
    FOREIGN KEY (task_id, team_id)
        REFERENCES projects.tasks (id, team_id) ON DELETE CASCADE
);
-- GET /api/v1/tasks/{id}/comments, oldest first
CREATE INDEX comments_task_idx ON projects.comments (task_id, created_at, id);
