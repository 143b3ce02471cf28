apiVersion: apps/v1
kind: Deployment
metadata:
  name: gateway
  namespace: {{ .Release.Namespace }}
  labels:
    app: gateway
    {{- include "openfaas.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.gateway.replicas }}
  selector:
    matchLabels:
      app: gateway
  template:
    metadata:
      labels:
        app: gateway
    spec:
      containers:
        - name: gateway
          image: {{ .Values.gateway.image }}
          env:
            - name: functions_provider_url
              value: "http://127.0.0.1:8081/"
            - name: OPENFAAS_PRO
              value: {{ .Values.openfaasPro | quote }}
            - name: FUNCTION_NAMESPACE
              value: {{ .Values.functionNamespace | quote }}
          ports:
            - containerPort: 8080
              name: http
