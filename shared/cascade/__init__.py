"""The classification cascade's configuration and its pure policy (temperatures, fusion, routing,
the decision after fusion), shared by the gateway that runs it and `mediamesh calibrate` that
replays it: one implementation, so a replay decides exactly as the gateway does."""
