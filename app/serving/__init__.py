"""The model side: preprocessing, loaded model versions, routing between them. No Flask."""
