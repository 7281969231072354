"""The gateway's scheduler: the memory budget, model slots and the service directory."""
