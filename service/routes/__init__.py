"""The service's routes, one module per resource, each an `APIRouter` named `router`.

Routes only wire HTTP to the use cases (`service.predictions`, `service.store`); what they
need at run time is on `request.app.state` (see `service.main.create_app` and
`service.lifespan`).
"""
