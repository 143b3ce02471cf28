{{- if .Values.nfd.enabled }}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-node-feature-discovery-worker
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: node-feature-discovery
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: node-feature-discovery
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: node-feature-discovery
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
        - name: worker
          image: "chart-default.invalid/nfd/node-feature-discovery:v0.19.0"
          command: ["nfd-worker"]
{{- end }}
