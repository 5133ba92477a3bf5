"""The Flask view of the messaging suite: queues a Celery task (run under gunicorn)."""

import os

from flask import Flask, jsonify, request

from tasks import work

app = Flask(__name__)


@app.get("/orders/<int:order>")
def enqueue(order):
    result = work.delay(request.args["downstream"], os.environ["TASKS_DB"])
    return jsonify(task_id=result.id, order=order)
