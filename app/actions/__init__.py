"""What the pages, the API and the CLI do alike: each action calls the core or starts a job."""
