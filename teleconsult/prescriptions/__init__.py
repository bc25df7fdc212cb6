"""Prescriptions: the French ordonnance as a PDF (``pdf.py``), signed by the doctor's key in CMS SignedData and
stored encrypted like any document, checkable by a pharmacist from its QR code (``service.py``)."""
