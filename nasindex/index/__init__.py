"""The SQL index: models, the database connection and its migrations."""
