"""chapterx.config: the ChapterX config dialect.

Modules: `yamlio` (safe YAML 1.2 reading with line numbers), `schema` (the JSON Schemas in `schemas/`,
the single source of key knowledge), `check` (one document against the schema), `merge` (layer merge
and defaults), `pins` (pinned `.config` messages), `vendors` (vendor list), `load`
(`resolve_bot_config`), `validate` (`validate_paths`), `env` (`Settings.from_env`), `secrets` (masking),
`report` (shared `Problem` / `FileReport`). Kept import-light: import the submodule you need.
"""
