"""The AUTOMATIC1111 dialect (``/sdapi/v1``): what webuiapi, Open WebUI and SillyTavern send."""
