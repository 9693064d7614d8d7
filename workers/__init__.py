"""Celery glue: the app, task wrappers and the asyncio pool. Logic lives in agentcron/."""
