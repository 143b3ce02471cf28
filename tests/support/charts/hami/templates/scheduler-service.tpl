apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-scheduler
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/component: hami-scheduler
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  type: {{ .Values.scheduler.service.type }}
  selector:
    app.kubernetes.io/component: hami-scheduler
    app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
    - name: http
      port: {{ .Values.scheduler.service.httpPort }}
      targetPort: 443
      {{- if eq .Values.scheduler.service.type "NodePort" }}
      nodePort: {{ .Values.scheduler.service.schedulerPort }}
      {{- end }}
