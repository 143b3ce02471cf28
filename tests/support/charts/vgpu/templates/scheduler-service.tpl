apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-scheduler
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/component: 4pd-scheduler
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  type: NodePort
  selector:
    app.kubernetes.io/component: 4pd-scheduler
    app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
    - name: http
      port: {{ .Values.scheduler.service.httpPort }}
      targetPort: 443
      nodePort: {{ .Values.scheduler.service.schedulerPort }}
