{{- if .Values.generateBasicAuth }}
apiVersion: v1
kind: Secret
metadata:
  name: basic-auth
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "openfaas.labels" . | nindent 4 }}
type: Opaque
stringData:
  basic-auth-user: admin
  basic-auth-password: test-bench-password
{{- end }}
