"""User-facing errors.

Every error a user can cause (bad file, unknown name, wrong column, tampered artifact) is raised as a
:class:`MedAIError` whose message names what was wrong and what was expected. The CLI prints it as one
line on stderr and exits with code 2; the service turns it into a 4xx response.
"""


class MedAIError(ValueError):
    """An error caused by the user's input, with a message fit to show them."""


class NotFoundError(MedAIError, LookupError):
    """A named thing (dataset, task, model, version, file) does not exist."""


class IntegrityError(MedAIError):
    """Stored data failed a checksum or signature check."""
