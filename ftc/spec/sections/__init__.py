"""The spec language's sections, one module per group; `ftc.spec.models` assembles them into `Spec`."""
