"""What the worker does with each kind of media; every model call goes through the gateway's HTTP API."""
