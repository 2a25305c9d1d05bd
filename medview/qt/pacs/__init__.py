"""The PACS feature: the Ctrl+P panel, retrieved and pushed studies, the server editor, sending the review."""
