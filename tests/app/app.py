"""Unmodified Flask test application (no ferrotel import): `gunicorn app:app`."""

import time

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return "hello"


@app.route("/slow")
def slow():
    time.sleep(0.15)
    return "slow"


@app.route("/error")
def error():
    raise ValueError("boom")


@app.route("/users/<int:uid>")
def user(uid):
    return jsonify({"uid": uid})


@app.route("/stream")
def stream():
    def gen():
        for i in range(3):
            if i:
                time.sleep(0.05)
            yield f"chunk{i}\n"

    return Response(gen())
