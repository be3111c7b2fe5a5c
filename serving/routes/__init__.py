"""One router per resource; `serving.main.ROUTERS` lists the ones the app mounts."""
