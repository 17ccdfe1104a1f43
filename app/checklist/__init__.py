"""A checklist run: its progress, what each step does, the report's facts, the headless driver."""
