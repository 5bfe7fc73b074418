# The tutorial's Python hostbot (bottle), as the baseline the Rust version replaces:
# answers GET / with the server's time and hostname as JSON. PORT defaults to 80 as in the
# tutorial; bench/hostbot.sh runs it on a free loopback port.
import os
import socket
from datetime import datetime

from bottle import route, run


@route("/")
def index():
    return {"time": datetime.now().astimezone().isoformat(), "host": socket.gethostname()}


run(host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "80")), quiet=True)
