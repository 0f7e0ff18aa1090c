"""Moving images to and from registries (moby/distribution): manifests, the download
and upload managers, pull and push. Talks to registries through berth.registry."""
