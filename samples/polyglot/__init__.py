"""A workflow in Python whose activities run in Node.js, over durable's HTTP API.

    python -m samples.polyglot      # server, Python worker and Node.js worker on a fresh file

See README.md beside this file for the protocol a worker in any language speaks.
"""
