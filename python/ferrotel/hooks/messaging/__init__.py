"""Message queues and task queues (issue 16): Celery."""
