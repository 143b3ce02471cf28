{{- if and .Values.config.map (not .Values.config.name) }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-configs
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
data:
{{- range $name, $contents := .Values.config.map }}
  {{ $name }}: |-
{{ $contents | indent 4 }}
{{- end }}
{{- end }}
