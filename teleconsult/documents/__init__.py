"""Documents: files patients, nurses and doctors exchange during a consultation, encrypted before they touch the
disk (``files.py``), of an allowed type judged on their content (``kinds.py``), given to whoever may read them
(``service.py``)."""
