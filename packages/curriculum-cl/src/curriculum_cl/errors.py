"""The package's expected error types; the CLI turns them into one-line messages (exit code 2)."""


class CurriculumError(ValueError):
    """Bad class list, curriculum id or setting."""


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or not in the expected layout (the message names the file)."""


class ResumeMismatchError(ValueError):
    """An existing results table was written under another configuration."""
