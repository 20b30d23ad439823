"""MedAI in the hospital's DICOM network: the imaging gateway.

``medai gateway`` runs a DICOM Storage SCP (C-ECHO, C-STORE; AE title, port, allowed calling AE titles, TLS) or
pulls new studies from a PACS over DICOMweb (QIDO-RS, WADO-RS). Received instances are encrypted at rest in a
spool and queued in the MedAI database per series (:mod:`medai.gateway.store`); routing rules choose a registered
image model for each series (:mod:`medai.gateway.routing`); the road's :class:`~medai.road.model.Model` runs on
de-identified copies (2D per instance, 3D per volume); the results go back to the PACS as a DICOM SR (TID 1500)
and Grad-CAM Secondary Captures in a new series of the same study (:mod:`medai.gateway.results`), by C-STORE or
STOW-RS. Every association, instance, inference and sent result is in the hash-chained audit log.

Needs the ``pacs`` extra (pynetdicom, highdicom, dicomweb-client, cryptography) besides ``imaging``; nothing
heavy is imported at package import.
"""
