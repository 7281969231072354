"""Request and response shapes shared by the gateway and the services, defined once."""
