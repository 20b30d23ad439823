"""De-identification of notes, tables and DICOM files (HIPAA Safe Harbor identifiers)."""
