"""What the patient (and the professional's software) reads about the secure inbox, French first."""
from __future__ import annotations

from backend.i18n import register_messages

register_messages({
    # the rules of the conversation
    "inbox_thread_not_found": {"fr": "Cette conversation est introuvable.",
                               "en": "This conversation cannot be found."},
    "inbox_message_not_found": {"fr": "Ce message est introuvable.", "en": "This message cannot be found."},
    "inbox_attachment_not_found": {"fr": "Cette pièce jointe est introuvable.",
                                   "en": "This attachment cannot be found."},
    "inbox_replies_forbidden": {
        "fr": "Le professionnel a désactivé les réponses à cette conversation : vous ne pouvez pas y répondre.",
        "en": "The professional turned replies off for this conversation: you cannot answer it."},
    "inbox_conversation_ended": {
        "fr": "Cette conversation a été clôturée par le professionnel : elle ne reçoit plus de messages.",
        "en": "This conversation was ended by the professional: it takes no more messages."},
    "inbox_new_thread_not_allowed": {
        "fr": "Vous pouvez écrire uniquement à un professionnel de santé qui vous a déjà écrit.",
        "en": "You may only write to a health professional who has already written to you."},
    "inbox_not_thread_owner": {
        "fr": "Seul le professionnel qui a commencé la conversation peut la clôturer ou en régler les réponses.",
        "en": "Only the professional who started the conversation may end it or set its replies."},
    "inbox_reply_to_unknown": {"fr": "Le message auquel vous répondez n'appartient pas à cette conversation.",
                               "en": "The message you answer is not part of this conversation."},
    "inbox_empty_message": {"fr": "Écrivez un message ou joignez un fichier.",
                            "en": "Write a message or attach a file."},
    "inbox_body_too_long": {"fr": "Le message est trop long ({max} caractères au plus).",
                            "en": "The message is too long (at most {max} characters)."},
    "inbox_subject_required": {"fr": "Indiquez l'objet du message.", "en": "Give the message a subject."},
    "inbox_subject_too_long": {"fr": "L'objet est trop long ({max} caractères au plus).",
                               "en": "The subject is too long (at most {max} characters)."},
    "inbox_too_many_attachments": {"fr": "Trop de pièces jointes : {max} au plus par message.",
                                   "en": "Too many attachments: at most {max} per message."},
    "inbox_too_large": {"fr": "L'envoi dépasse la taille maximale acceptée ({max_mb} Mo).",
                        "en": "The message exceeds the maximum accepted size ({max_mb} MB)."},
    "inbox_document_not_found": {"fr": "Ce document de votre dossier est introuvable.",
                                 "en": "This document of your record cannot be found."},
    "inbox_save_category": {"fr": "Choisissez une catégorie de votre dossier pour ce document.",
                            "en": "Choose a category of your record for this document."},
    "inbox_search_too_short": {"fr": "Saisissez au moins {min} caractères pour rechercher.",
                               "en": "Type at least {min} characters to search."},
    # the professional API (OperationOutcome diagnostics)
    "inbox_unknown_patient": {
        "fr": "Aucun patient ne peut recevoir de message avec cet identifiant INS (inconnu, profil refusé ou fermé).",
        "en": "No patient can receive messages under this INS identifier (unknown, refused or closed profile)."},
    "inbox_invalid_communication": {"fr": "Message refusé : {reason}.", "en": "Message refused: {reason}."},
    "inbox_unknown_professional": {
        "fr": "Destinataire en copie inconnu de l'annuaire (RPPS {rpps}).",
        "en": "Copied recipient not in the directory (RPPS {rpps})."},
    "inbox_invalid_search": {"fr": "Paramètre de recherche invalide : {reason}.",
                             "en": "Invalid search parameter: {reason}."},
    "inbox_conversation_ended_done": {"fr": "La conversation est clôturée.", "en": "The conversation is ended."},
    "inbox_replies_forbidden_done": {"fr": "Le patient ne peut plus répondre à cette conversation.",
                                     "en": "The patient may no longer reply in this conversation."},
    "inbox_replies_allowed_done": {"fr": "Le patient peut de nouveau répondre à cette conversation.",
                                   "en": "The patient may reply in this conversation again."},
    "inbox_sender_not_you": {"fr": "Message refusé : sender doit être le professionnel authentifié.",
                             "en": "Message refused: sender must be the authenticated professional."},
    # labels the app shows
    "inbox_sender_you": {"fr": "Vous", "en": "You"},
    "inbox_attachment_unnamed": {"fr": "Pièce jointe", "en": "Attachment"},
    # the patient's access history (audit actions of this feature)
    "history_family_inbox": {"fr": "Messagerie de santé", "en": "Health inbox"},
    "history_action_inbox_message_sent": {"fr": "Message envoyé dans votre messagerie",
                                          "en": "Message sent in your inbox"},
    "history_action_inbox_read": {"fr": "Lecture de vos messages par un professionnel",
                                  "en": "Your messages read by a professional"},
    "history_action_inbox_attachment_read": {"fr": "Lecture d'une pièce jointe de vos messages",
                                             "en": "An attachment of your messages read"},
    "history_action_inbox_conversation_ended": {"fr": "Conversation clôturée", "en": "Conversation ended"},
    "history_action_inbox_replies_forbidden": {"fr": "Réponses désactivées pour une conversation",
                                               "en": "Replies turned off for a conversation"},
    "history_action_inbox_replies_allowed": {"fr": "Réponses réactivées pour une conversation",
                                             "en": "Replies turned back on for a conversation"},
    "history_action_inbox_thread_deleted": {"fr": "Conversation supprimée", "en": "Conversation deleted"},
    "history_action_inbox_document_attached": {"fr": "Document de votre dossier envoyé par message",
                                               "en": "Document of your record sent by message"},
    "history_action_inbox_attachment_saved": {"fr": "Pièce jointe enregistrée dans votre dossier",
                                              "en": "Attachment saved to your record"},
    "history_action_inbox_purged": {"fr": "Conversations supprimées définitivement",
                                    "en": "Conversations permanently deleted"},
})
