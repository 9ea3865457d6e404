"""Study: the schema of a study (what is asked vs. how it is run), model references and presets."""
