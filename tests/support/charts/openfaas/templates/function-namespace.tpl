apiVersion: v1
kind: Namespace
metadata:
  name: {{ .Values.functionNamespace }}
  labels:
    role: openfaas-fn
    {{- include "openfaas.labels" . | nindent 4 }}
