"""The classic Dockerfile builder (moby/builder/dockerfile), as dockerd 20.10 runs it
with DOCKER_BUILDKIT=0: parser → instructions → dispatchers → daemon subsystems."""
