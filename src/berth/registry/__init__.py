"""The registry side (moby/registry): service configuration, endpoints, TLS, auth,
login and search. The distribution package moves images over what this sets up."""
