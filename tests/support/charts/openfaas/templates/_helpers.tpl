{{- define "openfaas.labels" -}}
app.kubernetes.io/name: openfaas
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
