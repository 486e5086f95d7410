"""The package's expected error types; the CLI turns them into one-line messages (exit code 2)."""


class CurriculumError(ValueError):
    """Bad class list, curriculum id or setting."""


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or not in the expected layout (the message names the file)."""


class UnsafePickleError(DatasetError):
    """A pickle asked for something other than numpy arrays, lists, dicts and plain scalars."""


class ResumeMismatchError(ValueError):
    """An existing results table was written under another configuration."""
