"""How a job executes: the runner, the worker child, the registry job kinds join, the live log."""
