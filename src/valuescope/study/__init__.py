"""Study: the schema of a study (what is asked vs. how it is run), model references and presets."""

#: where a study's results go unless it says otherwise (``Study.output``; the CLI's and the API's default directory)
DEFAULT_DIR = "valuescope-results"
